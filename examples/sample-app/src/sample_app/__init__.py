"""A tiny application: its console script reports what it runs with."""

GREETING = "hello from sample-app"
