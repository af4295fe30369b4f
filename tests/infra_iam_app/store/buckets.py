from aiobucket import Bucket

Files = Bucket("files")
