"""Who is told what: email delivery, the reminder digests, notices sent at once, handover emails."""
