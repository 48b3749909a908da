"""The database: schema (SQLAlchemy ORM), engine set-up, migrations, writes and reports.

SQLite file by default, PostgreSQL when many machines share it (DATABASE_URL).
"""

from db.schema import Base, Face, Image, ImageStatus, Job
from db.session import make_engine, make_session_factory

__all__ = ["Base", "Face", "Image", "ImageStatus", "Job", "make_engine", "make_session_factory"]
