"""Remote diagnostics, version-neutral: what goes into a diagnostics archive or a log upload,
with secrets removed, and the state of the uploads the CSMS asked for. The CSMS clients turn
their requests into calls here and the reported statuses into their own messages."""
