"""Where the app runs: the Heroku Platform API, or a local stand-in for rehearsals."""

from migration.platform.heroku import Addon, Attachment, HerokuClient, ProcessCount

__all__ = ["Addon", "Attachment", "HerokuClient", "ProcessCount"]
