# ruff: noqa
"""Every bucket of the app, declared once (three spellings of Bucket)."""

import aiobucket
from aiobucket import Bucket, BucketConfig
from aiobucket import Bucket as B

Avatars = Bucket("avatars", BucketConfig(public=True))
Invoices = aiobucket.Bucket("invoices", aiobucket.BucketConfig(versioned=True))
Exports = B("exports")
