"""Import every domain's models: the Alembic target, and what relationships resolve against."""

from pmo.accounts.models import ApiToken, LoginAttempt, Role, User, UserSession  # noqa: F401
from pmo.audit.models import AuditEntry  # noqa: F401
from pmo.catalog.models import CatalogVersion, CompletionField, Milestone, Subtask, SubtaskTerms, WorkItem  # noqa: F401
from pmo.orgs.models import Body, Ministry, UnionMember  # noqa: F401
from pmo.plans.models import CompletionValue, ImportJob, MonthlySnapshot, Plan, PlanRevision, SnapshotRow  # noqa: F401
from pmo.settings.models import Setting  # noqa: F401
from pmo.documents.models import Document, DocumentRead, DocumentVersion, Subscription  # noqa: F401
from pmo.faq.models import Faq, FaqDocument, FaqVote, Inquiry  # noqa: F401
from pmo.procedures.models import Dataset, DatasetVersion, OrdinanceItem, Procedure  # noqa: F401
from pmo.search.models import SearchMiss, SearchOutbox  # noqa: F401
from pmo.db import Base

metadata = Base.metadata
