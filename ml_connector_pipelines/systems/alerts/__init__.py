"""Alert channels per tenant: a Slack-compatible incoming webhook and email over SMTP."""
