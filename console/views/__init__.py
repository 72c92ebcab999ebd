"""Every HTML page of the console, one module per area (pages, mailboxes, alerts, restricted users …)."""
