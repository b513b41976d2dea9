"""What the relay calls: the bot, the SNS publisher, the webhook POST, the delivery queue, outbound HTTP."""
