"""The application context the CLI and the web service share: the settings, database
sessions (migrated first, or only checked for read-only commands), the Celery client,
and fetching a job or refusing with `JobNotFoundError`."""

from __future__ import annotations

from functools import cached_property

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.schema import Job
from emotion_batch.config import Settings


class AppContext:
    """Settings plus database sessions and a Celery client, each made on first use.

    `sessions` brings the schema to the newest revision first (what writes);
    `read_sessions` only checks it is there (what only reads never migrates).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        from db.migrate import upgrade
        from db.session import make_session_factory

        upgrade(self.settings.database_url)
        return make_session_factory(self.settings.database_url)

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        from db.migrate import require_current
        from db.session import make_session_factory

        require_current(self.settings.database_url)
        return make_session_factory(self.settings.database_url)

    @cached_property
    def client(self) -> Celery:
        from emotion_batch.broker import make_client

        return make_client(self.settings)

    def job(self, job_id: int) -> Job:
        """The job `job_id`, detached from its session (`JobNotFoundError`: none)."""
        from db.jobs import get_job

        with self.sessions() as session:
            job = get_job(session, job_id)
            session.expunge(job)
            return job
