"""``jit-bot stats``: approver-load figures computed from the audit trail alone
(``figures``), drawn as tables with small bar charts or written as one JSON document
(``rendering``)."""
