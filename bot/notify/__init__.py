"""Notifications: Slack messages (bot.notify.slack) sent through a durable outbox
(bot.notify.outbox), with `outbox list|retry` commands (bot.cli.outbox)."""
