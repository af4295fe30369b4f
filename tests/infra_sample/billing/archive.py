# ruff: noqa
from shared.perms import InvoiceArchive
from shared.storage import Invoices

InvoiceReader = Invoices.ref(InvoiceArchive)
