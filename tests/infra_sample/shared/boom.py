# ruff: noqa
from aiobucket import Bucket

Logs = Bucket("logs")

raise RuntimeError("aiobucket infra must never import the code it analyses")
