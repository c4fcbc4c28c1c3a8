"""The playground: a static page at / that talks to the REST API, for trying Parley without Slack or Discord."""
