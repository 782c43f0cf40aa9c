"""Webhook handlers: each module owns a gidgethub Router; bot.routing merges them."""
