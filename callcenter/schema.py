"""Every table of the service, for Alembic and for tests that create the schema directly."""

from __future__ import annotations

from callcenter import leases
from callcenter.accounts import models as accounts_models
from callcenter.audit import models as audit_models
from callcenter.calls import models as calls_models
from callcenter.db import Base
from callcenter.directory import models as directory_models
from callcenter.recordings import models as recordings_models

MODEL_MODULES = (
    directory_models,
    calls_models,
    recordings_models,
    audit_models,
    leases,
    accounts_models,
)
metadata = Base.metadata
