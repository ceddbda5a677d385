"""Everything the portal knows about Microsoft Entra ID and Graph; no Flask in here."""
