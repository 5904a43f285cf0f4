"""Every request and answer of the Corral API, declared once.

The backend validates requests against these declarations and builds its OpenAPI document from
them; ``corral.client`` returns answers typed by them, and the console compares what it reads
with the enums here. Shapes are ``TypedDict``s checked by pydantic, so the data stays plain JSON
(dicts and lists) everywhere. This package imports nothing of the backend, the client or the
console: each side imports it.
"""

from corral.shapes.auth import (
    GuestLogin,
    Login,
    Me,
    Message,
    NewToken,
    Session,
    TierLimits,
    TokenCreate,
    TokenInfo,
    TokenList,
    TokenRevoked,
    Usage,
    User,
)
from corral.shapes.catalog import EngineHealth, Health, Image, ImageList, Role, RoleList
from corral.shapes.check import Fault, Refused, check
from corral.shapes.containers import (
    AGENT_SESSION,
    AgentDetails,
    Container,
    ContainerCreate,
    ContainerList,
    ContainerSettings,
    CreateQuery,
    Deleted,
    DeleteQuery,
    Lifecycle,
    ListQuery,
    Resources,
    SettingsChanged,
    is_agent,
)
from corral.shapes.engines import Engine, EngineList
from corral.shapes.enums import (
    ACTIVE_ROLE_STATES,
    FULL_SCOPES,
    RUNNING_STATUSES,
    STARTABLE_STATUSES,
    EventType,
    RoleState,
    Scope,
    Stage,
    Status,
)
from corral.shapes.errors import Error
from corral.shapes.events import EventMessage, EventsQuery, Progress
from corral.shapes.files import (
    FileChanged,
    FileEntry,
    FileList,
    FilesQuery,
    FileUploaded,
    UploadQuery,
)
from corral.shapes.terminal import TerminalQuery
from corral.shapes.usage import ContainerStats, LogsQuery, StatsMessage, StatsQuery
from corral.shapes.volumes import KeptVolume, VolumeDeleted, VolumeList

__all__ = [
    "ACTIVE_ROLE_STATES",
    "AGENT_SESSION",
    "FULL_SCOPES",
    "RUNNING_STATUSES",
    "STARTABLE_STATUSES",
    "AgentDetails",
    "Container",
    "ContainerCreate",
    "ContainerList",
    "ContainerSettings",
    "ContainerStats",
    "CreateQuery",
    "DeleteQuery",
    "Deleted",
    "Engine",
    "EngineHealth",
    "EngineList",
    "Error",
    "EventMessage",
    "EventType",
    "EventsQuery",
    "Fault",
    "FileChanged",
    "FileEntry",
    "FileList",
    "FileUploaded",
    "FilesQuery",
    "GuestLogin",
    "Health",
    "Image",
    "ImageList",
    "KeptVolume",
    "Lifecycle",
    "ListQuery",
    "Login",
    "LogsQuery",
    "Me",
    "Message",
    "NewToken",
    "Progress",
    "Refused",
    "Resources",
    "Role",
    "RoleList",
    "RoleState",
    "Scope",
    "Session",
    "SettingsChanged",
    "Stage",
    "StatsMessage",
    "StatsQuery",
    "Status",
    "TerminalQuery",
    "TierLimits",
    "TokenCreate",
    "TokenInfo",
    "TokenList",
    "TokenRevoked",
    "UploadQuery",
    "Usage",
    "User",
    "VolumeDeleted",
    "VolumeList",
    "check",
    "is_agent",
]
