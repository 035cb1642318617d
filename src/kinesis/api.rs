//! One small function per Kinesis call Tributary makes. Nothing else talks to the SDK, so the
//! IAM actions Tributary needs are exactly the functions in this file.

use aws_sdk_kinesis::Client;

use crate::aws::AwsError;

/// `kinesis:ListStreams`, all pages. Besides `NextToken`, pages by `ExclusiveStartStreamName`
/// when a service (or an emulator) says `HasMoreStreams` without a token.
pub async fn list_streams(client: &Client) -> Result<Vec<String>, AwsError> {
    let mut names: Vec<String> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut req = client.list_streams().limit(100);
        match &next_token {
            Some(token) => req = req.next_token(token),
            None => {
                if let Some(last) = names.last() {
                    req = req.exclusive_start_stream_name(last);
                }
            }
        }
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kinesis:ListStreams", &e))?;
        let page_len = out.stream_names.len();
        names.extend(out.stream_names);
        next_token = out.next_token;
        if !out.has_more_streams || page_len == 0 {
            break;
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}
