"""Backpack paper mode: Backpack's own REST API under /backpack, translated to the same services
the native API uses (netting accounts), signed with the account's paper API keys."""
