"""SMS gateways: the adapters behind :class:`haqq.ports.SmsGateway` (Kannel, SMPP)."""
