"""Where the ``gcp`` provider (and bot/google_groups.py) gets Google credentials, and the
Google clients it builds with them: Resource Manager over REST, IAM admin over gRPC.

The Google libraries are imported in the functions that build credentials and clients
(docs/development.md, "Cloud SDKs are imported where they are used")."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from providers.base import ProviderError

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from google.auth.credentials import Credentials
    from google.cloud import iam_admin_v1

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class CredentialsSource(Protocol):
    """google.auth.default's shape: credentials (and a project id) for some scopes."""

    def __call__(self, *, scopes: Sequence[str]) -> tuple[Credentials, str | None]: ...


class GoogleAuth:
    """Where every Google credential of the bot comes from, in one place.

    Application Default Credentials (a key file named by GOOGLE_APPLICATION_CREDENTIALS,
    gcloud's user credentials, or the metadata server on GCP); with ``impersonate`` those
    only mint short-lived tokens for that service account (needs
    roles/iam.serviceAccountTokenCreator on it), which is then what acts. ``subject`` asks
    for domain-wide delegation (the Admin SDK reads groups as that Workspace user).
    """

    def __init__(
        self,
        *,
        impersonate: str | None = None,
        source: CredentialsSource | None = None,
        iam_credentials_endpoint: str | None = None,
        lifetime: int = 3600,
    ) -> None:
        self.impersonate = impersonate
        self._source = source or _default_source
        self._iam_credentials_endpoint = iam_credentials_endpoint
        self._lifetime = lifetime
        self._cache: dict[tuple[tuple[str, ...], str | None], Credentials] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GoogleAuth:
        key_file = environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None
        return cls(
            impersonate=environ.get("JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT") or None,
            source=_file_source(key_file) if key_file else None,
        )

    def credentials(self, scopes: Sequence[str], *, subject: str | None = None) -> Credentials:
        """Credentials for ``scopes`` (built once; google-auth refreshes their tokens)."""
        key = (tuple(scopes), subject)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        built = self._build(list(scopes), subject)
        with self._lock:
            return self._cache.setdefault(key, built)

    def _build(self, scopes: list[str], subject: str | None) -> Credentials:
        # Impersonation needs only cloud-platform on the source: the IAM Credentials API
        # mints the token for the target scopes.
        import google.auth.exceptions
        from google.auth import impersonated_credentials

        source_scopes = [CLOUD_PLATFORM] if self.impersonate else scopes
        try:
            source, _ = self._source(scopes=source_scopes)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ProviderError(
                f"no Google credentials: {exc} Set up Application Default Credentials "
                "(docs/gcp.md) for the bot's service account."
            ) from None
        if self.impersonate:
            extra = {}
            if self._iam_credentials_endpoint:
                extra["iam_endpoint_override"] = (
                    f"{self._iam_credentials_endpoint.rstrip('/')}/v1/projects/-/"
                    f"serviceAccounts/{self.impersonate}:generateAccessToken"
                )
            return impersonated_credentials.Credentials(
                source_credentials=source,
                target_principal=self.impersonate,
                target_scopes=scopes,
                subject=subject,
                lifetime=self._lifetime,
                **extra,
            )
        if subject:
            with_subject = getattr(source, "with_subject", None)
            if with_subject is None:
                raise ProviderError(
                    f"domain-wide delegation (acting as {subject}) needs a service account: "
                    "set JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT, or point "
                    "GOOGLE_APPLICATION_CREDENTIALS at a service-account key; the current "
                    f"credentials ({type(source).__name__}) cannot sign for a user"
                )
            return with_subject(subject)  # type: ignore[no-any-return]
        return source


def _default_source(*, scopes: Sequence[str]) -> tuple[Credentials, str | None]:
    import google.auth

    credentials, project = google.auth.default(scopes=scopes)
    return credentials, project


def _file_source(path: str) -> CredentialsSource:
    """ADC from a named key file: what google.auth.default does with the variable, but
    read from the environment the composition root was given."""

    def load(*, scopes: Sequence[str]) -> tuple[Credentials, str | None]:
        import google.auth

        with warnings.catch_warnings():
            # The generic loader warns about files from untrusted sources; this one is the
            # operator's own, and google.auth.default silences the warning the same way.
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, project = google.auth.load_credentials_from_file(path, scopes=scopes)
        return credentials, project

    return load


# ---------------------------------------------------------------------- clients


class GcpClients:
    """Builds the Google clients on first use, with the given credentials (a Credentials
    object, or a function returning one, so nothing asks for credentials until a GCP
    target is used). ``api_endpoint`` points Resource Manager elsewhere (tests, emulators);
    ``iam_endpoint`` does the same for IAM admin, where ``http://host:port`` means a
    plaintext gRPC endpoint on this machine."""

    def __init__(
        self,
        credentials: Credentials | Callable[[], Credentials],
        *,
        api_endpoint: str | None = None,
        iam_endpoint: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._api_endpoint = api_endpoint
        self._iam_endpoint = iam_endpoint
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def policies(self, resource: str) -> Any:
        """The Resource Manager client for a projects/…, folders/… or organizations/… name."""
        from google.cloud import resourcemanager_v3

        kind = resource.split("/")[0]
        factory = {
            "projects": resourcemanager_v3.ProjectsClient,
            "folders": resourcemanager_v3.FoldersClient,
            "organizations": resourcemanager_v3.OrganizationsClient,
        }[kind]
        return self._get(
            kind,
            lambda: factory(
                credentials=self._creds(),
                transport="rest",
                client_options={"api_endpoint": self._api_endpoint} if self._api_endpoint else None,
            ),
        )

    def iam(self) -> iam_admin_v1.IAMClient:
        client: iam_admin_v1.IAMClient = self._get("iam", self._build_iam)
        return client

    def _build_iam(self) -> iam_admin_v1.IAMClient:
        import grpc
        from google.auth.transport.grpc import secure_authorized_channel
        from google.auth.transport.requests import Request
        from google.cloud import iam_admin_v1
        from google.cloud.iam_admin_v1.services.iam.transports.grpc import IAMGrpcTransport

        endpoint = self._iam_endpoint
        if endpoint and endpoint.startswith("http://"):
            channel = secure_authorized_channel(
                self._creds(),
                Request(),
                urlsplit(endpoint).netloc,
                ssl_credentials=grpc.local_channel_credentials(),
            )
            return iam_admin_v1.IAMClient(transport=IAMGrpcTransport(channel=channel))
        options = {"api_endpoint": endpoint.removeprefix("https://")} if endpoint else None
        return iam_admin_v1.IAMClient(credentials=self._creds(), client_options=options)

    def _creds(self) -> Credentials:
        from google.auth.credentials import Credentials

        if isinstance(self._credentials, Credentials):
            return self._credentials
        return self._credentials()

    def _get(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]
