"""``ferry rehearse``: the whole runbook on local servers, with an app that keeps writing."""
