"""Static analysis of a codebase's bucket usage: ``aiobucket infra PATH``.

Every ``.py`` file under PATH is parsed with :mod:`ast`; nothing is imported or
run. The analysis finds ``Bucket("name", BucketConfig(...))`` declarations and
every use of them: method calls (``Photos.upload(...)``, also through imports
such as ``import shared.storage as s; s.Photos.download(...)``) and refs
(``Photos.ref(Downloader)``, or a Protocol of your own that combines
permissions). A bucket handed to one of aiobucket's own helpers
(``aiobucket.http.open_range``) needs the permissions that helper's parameter
declares. Each use is attributed to a *service*: the top-level package (the
first path component) under PATH. Separate services may each declare a bucket
they share, with the same BucketConfig.

Uses that cannot be followed statically, such as a bucket passed to a function,
stored in a variable or attribute, or reached with ``getattr``, become warnings
with ``file:line`` and a suggestion to hand the code a ``ref()`` instead.

The result is a :class:`Manifest`, rendered as JSON (:func:`to_json`), as
least-privilege AWS IAM policies (:func:`iam_policies`), as Azure RBAC role
assignments and a custom role per service (:func:`azure_rbac`), as a Mermaid
flowchart (:func:`mermaid`), or as the S3 / GCS CORS configurations that
browser uploads and downloads need (:func:`cors`).
"""

from ._analysis import BucketDecl, Finding, Manifest, analyse
from ._azure import azure_rbac
from ._render import cors, iam_policies, mermaid, to_json

__all__ = [
    "BucketDecl",
    "Finding",
    "Manifest",
    "analyse",
    "azure_rbac",
    "cors",
    "iam_policies",
    "mermaid",
    "to_json",
]
