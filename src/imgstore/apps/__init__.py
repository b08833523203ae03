"""Command-line tools, viewer and integrations."""
