"""Durable hinted handoff and ownership transfer on join and leave."""
