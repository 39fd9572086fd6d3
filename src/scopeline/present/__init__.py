"""Presentation shared by every tool: figures built without global state
(:mod:`scopeline.present.figures`) and the one HTML report writer
(:mod:`scopeline.present.report`)."""
