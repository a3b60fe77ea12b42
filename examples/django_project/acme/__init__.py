"""Acme Reports: a small reporting SaaS with a trial, a Business plan and pqlsdk's moments."""
