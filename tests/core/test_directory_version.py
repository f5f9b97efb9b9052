"""Every directory writer moves the directory version, whatever else it imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_process_that_imports_only_the_directory_service_still_bumps_the_version(
    tmp_path: Path,
) -> None:
    # A fresh interpreter, so nothing the test suite imported (the snapshot, the app) helps.
    script = textwrap.dedent(
        """
        import sys
        from sqlalchemy import create_engine, select
        from sqlalchemy.orm import Session

        from callcenter.directory import service
        from callcenter.directory.models import DirectoryVersion
        from callcenter.db import Base

        assert "callcenter.directory.snapshot" not in sys.modules
        engine = create_engine("sqlite:///" + sys.argv[1])
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            session.add(DirectoryVersion(id=1, version=0))
        with Session(engine) as session, session.begin():
            service.add_staff(session, "jberzins", name="Jānis Bērziņš", phone="+37120000001")
        with Session(engine) as session:
            print(session.scalar(select(DirectoryVersion.version)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "dir.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
