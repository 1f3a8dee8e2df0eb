"""Import every domain's models: the Alembic target, and what relationships resolve against."""

from pmo.accounts.models import ApiToken, LoginAttempt, Role, User, UserSession  # noqa: F401
from pmo.accounts.models import MfaCredential, MfaRecoveryCode  # noqa: F401
from pmo.audit.models import AuditEntry  # noqa: F401
from pmo.catalog.models import CatalogVersion, CompletionField, Milestone, Subtask, SubtaskTerms, WorkItem  # noqa: F401
from pmo.delays.models import CaseEntry, FollowupCase  # noqa: F401
from pmo.orgs.models import Body, Ministry, UnionMember  # noqa: F401
from pmo.plans.models import (  # noqa: F401
    CompletionValue, ImportJob, MonthlySnapshot, Plan, PlanComment, PlanRevision, SnapshotRow,
)
from pmo.settings.models import Setting  # noqa: F401
from pmo.subsidy.models import (  # noqa: F401
    Application, ApplicationEvent, ApplicationLine, BaseTable, BaseTableRow, Budget, Estimate, EstimateLine,
    EstimateNote, NoncoveredKeyword, Registration, UnionTransfer,
)
from pmo.documents.models import Document, DocumentRead, DocumentVersion, Subscription  # noqa: F401
from pmo.faq.models import Faq, FaqDocument, FaqVote, Inquiry  # noqa: F401
from pmo.procedures.models import Dataset, DatasetVersion, OrdinanceItem, Procedure  # noqa: F401
from pmo.search.models import SearchMiss, SearchOutbox  # noqa: F401
from pmo.db import Base

metadata = Base.metadata
