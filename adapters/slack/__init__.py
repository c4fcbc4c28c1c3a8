"""Parley in Slack: slack-bolt (async) over HTTP (`parley serve`) or Socket Mode (`parley slack`)."""
