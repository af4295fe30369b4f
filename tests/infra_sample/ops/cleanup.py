# ruff: noqa
import aiobucket
from aiobucket import ReadWriter


async def cleanup() -> None:
    from shared.boom import Logs

    await Logs.remove("yesterday.log")
    scratch = aiobucket.Bucket("scratch")
    rw = Logs.ref(ReadWriter)
