//! Checking the IAM role ARNs users type, before AWS sees them.

/// `arn:PARTITION:iam::ACCOUNT(12 digits):role/PATH/NAME`.
pub fn validate_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an IAM role ARN; expected arn:aws:iam::123456789012:role/NAME"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(validate_role_arn("arn:aws:iam::123456789012:role/X").is_ok());
        assert!(validate_role_arn("arn:aws-us-gov:iam::123456789012:role/path/X").is_ok());
        assert!(validate_role_arn("arn:aws:iam::123:role/X").is_err());
        assert!(validate_role_arn("arn:aws:iam::123456789012:user/X").is_err());
        assert!(validate_role_arn("nonsense").is_err());
    }
}
