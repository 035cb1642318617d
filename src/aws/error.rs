//! Classifying AWS failures. Every decision a job makes (retry, back off, new iterator, stop and
//! fail) keys off [`AwsErrorKind`], computed by one pure function with its own tests.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Keys unknown, bad signature, expired token: the user must fix the authorization.
    InvalidCredentials,
    /// The principal lacks a permission, or KMS refuses the key.
    AccessDenied,
    /// STS refused to hand out role credentials (trust policy, external ID, missing role).
    AssumeRoleFailed,
    /// The stream (or shard) does not exist (any more).
    NotFound,
    /// The shard iterator is older than five minutes: ask for a new one.
    ExpiredIterator,
    /// Rate limits: back off and try again.
    Throttled,
    /// 5xx, resets, timeouts inside AWS: retry with backoff.
    Transient,
    /// The endpoint could not be reached at all.
    Unreachable,
    /// A request AWS considers malformed (a bug or a bad setting).
    InvalidArgument,
    Other,
}

impl AwsErrorKind {
    /// The stable error code the HTTP API returns for this kind.
    pub fn api_code(self) -> &'static str {
        match self {
            AwsErrorKind::InvalidCredentials => "invalid_credentials",
            AwsErrorKind::AccessDenied => "access_denied",
            AwsErrorKind::AssumeRoleFailed => "assume_role_failed",
            AwsErrorKind::NotFound => "stream_not_found",
            AwsErrorKind::ExpiredIterator => "expired_iterator",
            AwsErrorKind::Throttled => "aws_throttled",
            AwsErrorKind::Transient => "aws_unavailable",
            AwsErrorKind::Unreachable => "aws_unreachable",
            AwsErrorKind::InvalidArgument => "aws_invalid_request",
            AwsErrorKind::Other => "aws_error",
        }
    }

    /// Worth another try after a pause (the same request may succeed later).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            AwsErrorKind::Throttled | AwsErrorKind::Transient | AwsErrorKind::Unreachable
        )
    }
}

/// An AWS failure, classified, with a message that says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub kind: AwsErrorKind,
    /// The AWS error code when there was one (e.g. `ProvisionedThroughputExceededException`).
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn new(kind: AwsErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// Classifies an SDK error from the call named `action` (e.g. "kinesis:GetRecords").
    pub fn from_sdk<E>(action: &str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::ServiceError(ctx) => {
                let raw = ctx.raw();
                let status = raw.status().as_u16();
                let body = raw
                    .body()
                    .bytes()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let code = ctx
                    .err()
                    .code()
                    .map(str::to_owned)
                    .or_else(|| xml_code(&body));
                let aws_message = ctx
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| body.chars().take(300).collect());
                let kind = classify(Some(status), code.as_deref(), &body);
                Self {
                    kind,
                    message: explain(kind, action, code.as_deref(), &aws_message),
                    code,
                }
            }
            SdkError::TimeoutError(_) => Self::new(
                AwsErrorKind::Transient,
                format!("{action} timed out; will retry"),
            ),
            SdkError::DispatchFailure(f) => {
                let detail = error_chain(err);
                if f.is_io() || f.is_timeout() || connection_lost(&detail) {
                    Self::new(
                        AwsErrorKind::Unreachable,
                        format!("{action}: cannot reach AWS ({detail}); check the region, network and any AWS_ENDPOINT_URL settings"),
                    )
                } else {
                    credential_or_other(action, &detail)
                }
            }
            // An error status whose body the SDK could not parse, e.g. an XML `<ErrorResponse>`
            // (moto, proxies) where a JSON error was expected: classify it by status and any
            // XML code, as for modelled errors, instead of calling every such denial transient.
            SdkError::ResponseError(ctx) if ctx.raw().status().as_u16() >= 400 => {
                let raw = ctx.raw();
                let status = raw.status().as_u16();
                let body = raw
                    .body()
                    .bytes()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let code = xml_code(&body);
                let aws_message =
                    xml_message(&body).unwrap_or_else(|| body.chars().take(300).collect());
                let kind = classify(Some(status), code.as_deref(), &body);
                Self {
                    kind,
                    message: explain(kind, action, code.as_deref(), &aws_message),
                    code,
                }
            }
            SdkError::ResponseError(_) => Self::new(
                AwsErrorKind::Transient,
                format!(
                    "{action}: AWS sent a response that could not be read ({}); will retry",
                    error_chain(err)
                ),
            ),
            _ => credential_or_other(action, &error_chain(err)),
        }
    }
}

/// Credential resolution failures (e.g. AssumeRole refused) surface before the request is
/// sent; their text is all we have.
/// A connection that broke under a request (the peer closed or reset it, e.g. while Kinesis or
/// a proxy in front of it restarts). hyper reports these as connector errors of kind "other",
/// not I/O, yet they are as transient as a refused connection: calling them `Other` failed
/// import and export jobs for good on the first outage.
fn connection_lost(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    [
        "connection closed",
        "connection reset",
        "connection refused",
        "connection aborted",
        "broken pipe",
        "incomplete message",
        "unexpected eof",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

fn credential_or_other(action: &str, detail: &str) -> AwsError {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("assumerole") || lower.contains("assume role") || lower.contains("sts") {
        AwsError::new(
            AwsErrorKind::AssumeRoleFailed,
            format!("could not assume the IAM role ({detail}); check the role ARN, its trust policy and the external ID"),
        )
    } else if lower.contains("credential") {
        AwsError::new(
            AwsErrorKind::InvalidCredentials,
            format!("no usable AWS credentials ({detail}); check the authorization"),
        )
    } else {
        AwsError::new(AwsErrorKind::Other, format!("{action} failed: {detail}"))
    }
}

/// Full `source()` chain, since the SDK's top-level Display is often just "dispatch failure".
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Some peers (and STS/IAM) answer in XML: `<Code>AccessDenied</Code>`.
fn xml_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim().to_owned())
}

/// `<Message>…</Message>` of an XML error body.
fn xml_message(body: &str) -> Option<String> {
    let start = body.find("<Message>")? + "<Message>".len();
    let end = body[start..].find("</Message>")? + start;
    Some(body[start..end].trim().to_owned())
}

/// The one place that decides what an AWS answer means.
pub fn classify(status: Option<u16>, code: Option<&str>, body: &str) -> AwsErrorKind {
    let code = code.unwrap_or("");
    match code {
        "ExpiredIteratorException" => return AwsErrorKind::ExpiredIterator,
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "KMSThrottlingException"
        | "TooManyRequestsException" => return AwsErrorKind::Throttled,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidSignatureException"
        | "InvalidAccessKeyId" => return AwsErrorKind::InvalidCredentials,
        "AccessDeniedException"
        | "AccessDenied"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSOptInRequired" => return AwsErrorKind::AccessDenied,
        "ResourceNotFoundException" => return AwsErrorKind::NotFound,
        "InvalidArgumentException" | "ValidationException" | "SerializationException" => {
            return AwsErrorKind::InvalidArgument
        }
        "ResourceInUseException"
        | "InternalFailure"
        | "InternalFailureException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalServerError" => return AwsErrorKind::Transient,
        _ => {}
    }
    // No usable code (e.g. an HTML or XML body from a proxy or emulator): fall back on status.
    match status {
        Some(403)
            if body.contains("InvalidClientTokenId") || body.contains("SignatureDoesNotMatch") =>
        {
            AwsErrorKind::InvalidCredentials
        }
        Some(401 | 403) => AwsErrorKind::AccessDenied,
        Some(429) => AwsErrorKind::Throttled,
        Some(s) if s >= 500 => AwsErrorKind::Transient,
        _ => AwsErrorKind::Other,
    }
}

fn explain(kind: AwsErrorKind, action: &str, code: Option<&str>, aws_message: &str) -> String {
    let code = code.unwrap_or("error");
    let hint = match kind {
        AwsErrorKind::InvalidCredentials => {
            "the access key is unknown or the secret is wrong; check the authorization's keys"
        }
        AwsErrorKind::AccessDenied => {
            "the credentials lack a permission; attach the policy from GET /api/aws/policies"
        }
        AwsErrorKind::AssumeRoleFailed => {
            "check the role ARN, its trust policy and the external ID"
        }
        AwsErrorKind::NotFound => {
            "the stream does not exist in this account and region; check its name and region"
        }
        AwsErrorKind::ExpiredIterator => "a new shard iterator is needed",
        AwsErrorKind::Throttled => "AWS is rate limiting; backing off",
        AwsErrorKind::Transient => "AWS had a temporary failure; retrying",
        AwsErrorKind::Unreachable => "check the network and endpoint settings",
        AwsErrorKind::InvalidArgument => "AWS rejected the request as invalid",
        AwsErrorKind::Other => "unexpected AWS error",
    };
    format!("{action}: {code}: {aws_message} ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use AwsErrorKind::*;

    #[test]
    fn codes_decide_first() {
        assert_eq!(
            classify(
                Some(400),
                Some("ProvisionedThroughputExceededException"),
                ""
            ),
            Throttled
        );
        assert_eq!(
            classify(Some(400), Some("LimitExceededException"), ""),
            Throttled
        );
        assert_eq!(
            classify(Some(400), Some("ExpiredIteratorException"), ""),
            ExpiredIterator
        );
        assert_eq!(
            classify(Some(400), Some("ResourceNotFoundException"), ""),
            NotFound
        );
        assert_eq!(
            classify(Some(400), Some("AccessDeniedException"), ""),
            AccessDenied
        );
        assert_eq!(
            classify(Some(400), Some("UnrecognizedClientException"), ""),
            InvalidCredentials
        );
        assert_eq!(
            classify(Some(403), Some("InvalidClientTokenId"), ""),
            InvalidCredentials
        );
        assert_eq!(
            classify(Some(400), Some("InvalidArgumentException"), ""),
            InvalidArgument
        );
        assert_eq!(
            classify(Some(400), Some("KMSThrottlingException"), ""),
            Throttled
        );
    }

    #[test]
    fn status_decides_when_there_is_no_code() {
        let moto_denial = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: x is not authorized to perform: kinesis:ListStreams</Message></Error></ErrorResponse>";
        assert_eq!(
            classify(Some(403), xml_code(moto_denial).as_deref(), moto_denial),
            AccessDenied
        );
        assert_eq!(classify(Some(403), None, "<html>nope</html>"), AccessDenied);
        assert_eq!(classify(Some(500), None, "<html>boom</html>"), Transient);
        assert_eq!(classify(Some(503), None, ""), Transient);
        assert_eq!(classify(Some(429), None, ""), Throttled);
        assert_eq!(classify(Some(418), None, ""), Other);
    }

    #[test]
    fn unparsable_error_bodies_are_classified_by_status_and_xml_code() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let response = |status: u16,
                        body: &'static str|
         -> SdkError<
            aws_sdk_kinesis::operation::list_streams::ListStreamsError,
            HttpResponse,
        > {
            SdkError::response_error(
                "malformed JSON error body",
                HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body)),
            )
        };
        let denial = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: x is not authorized to perform: kinesis:ListStreams</Message></Error></ErrorResponse>";
        let e = AwsError::from_sdk("kinesis:ListStreams", &response(403, denial));
        assert_eq!(e.kind, AccessDenied);
        assert_eq!(e.code.as_deref(), Some("AccessDenied"));
        assert!(
            e.message
                .contains("is not authorized to perform: kinesis:ListStreams"),
            "{}",
            e.message
        );
        let bad_key = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>nope</Message></Error></ErrorResponse>";
        assert_eq!(
            AwsError::from_sdk("kinesis:ListStreams", &response(403, bad_key)).kind,
            InvalidCredentials
        );
        assert_eq!(
            AwsError::from_sdk("kinesis:ListStreams", &response(500, "<html>boom</html>")).kind,
            Transient
        );
        // A success status with an unreadable body stays transient.
        assert_eq!(
            AwsError::from_sdk("kinesis:ListStreams", &response(200, "<html>")).kind,
            Transient
        );
    }

    #[test]
    fn connections_cut_under_a_request_are_outages() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let dispatch = |e: ConnectorError| -> SdkError<
            aws_sdk_kinesis::operation::get_records::GetRecordsError,
            HttpResponse,
        > { SdkError::dispatch_failure(e) };
        let cut = std::io::Error::other(
            "client error (SendRequest): connection closed before message completed",
        );
        let e = AwsError::from_sdk(
            "kinesis:GetRecords",
            &dispatch(ConnectorError::other(cut.into(), None)),
        );
        assert_eq!(e.kind, Unreachable, "{}", e.message);
        assert!(e.kind.is_retryable());
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(
            AwsError::from_sdk(
                "kinesis:PutRecords",
                &dispatch(ConnectorError::io(reset.into()))
            )
            .kind,
            Unreachable
        );
        // Not every connector failure is an outage.
        let other = std::io::Error::other("invalid URI");
        assert_eq!(
            AwsError::from_sdk(
                "kinesis:GetRecords",
                &dispatch(ConnectorError::other(other.into(), None))
            )
            .kind,
            Other
        );
    }

    #[test]
    fn only_rate_limits_and_outages_are_retried() {
        assert!(Throttled.is_retryable() && Transient.is_retryable() && Unreachable.is_retryable());
        assert!(
            !AccessDenied.is_retryable()
                && !NotFound.is_retryable()
                && !InvalidCredentials.is_retryable()
        );
    }
}
