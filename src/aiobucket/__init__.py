"""aiobucket: asyncio-native object storage."""
