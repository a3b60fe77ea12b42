"""Template tags of pqlsdk's Django app: ``{% load pqlsdk %}``."""
