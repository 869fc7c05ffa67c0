"""Fixtures for the cloud fakes, registered by tests/conftest.py for every test module.

Each fake runs once per module (starting one costs a TLS handshake, a gRPC server or
moto's import) and is emptied before each test that asks for it; a module seeds it with
what its tests need in a fixture of its own. After the test, the Azure and Google fakes
must not have failed inside themselves: such a failure is the fake's bug, and would
otherwise read as the bot's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.aws import MotoAws, Seeded
from tests.fakes.azure import FakeAzure
from tests.fakes.gcp import FakeGoogle
from tests.fakes.kubernetes import FakeKubernetes


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoAws]:
    """moto in server mode, reached over HTTP as the bot reaches AWS."""
    server = MotoAws().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto: MotoAws) -> Seeded:
    """moto emptied, then seeded with the organization, users and permission sets."""
    moto.reset()
    return moto.seed()


@pytest.fixture(scope="module")
def azure_server() -> Iterator[FakeAzure]:
    """The fake of ARM, Graph and Entra ID, over HTTPS."""
    fake = FakeAzure().start()
    yield fake
    fake.stop()


@pytest.fixture
def empty_azure(azure_server: FakeAzure) -> Iterator[FakeAzure]:
    """The Azure fake as ``FakeAzure.reset`` leaves it, checked for its own errors after."""
    azure_server.reset()
    yield azure_server
    assert not azure_server.internal_errors, azure_server.internal_errors


@pytest.fixture(scope="module")
def google_server() -> Iterator[FakeGoogle]:
    """The fake of Google's IAM, Resource Manager and Directory APIs, over HTTP and gRPC."""
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


@pytest.fixture
def empty_google(google_server: FakeGoogle) -> Iterator[FakeGoogle]:
    """The Google fake with nothing in it, checked for its own errors after the test."""
    google_server.reset()
    yield google_server
    assert not google_server.internal_errors, google_server.internal_errors


@pytest.fixture(scope="module")
def kube_server() -> Iterator[FakeKubernetes]:
    """The fake of the Kubernetes API, over HTTPS with a CA of its own."""
    fake = FakeKubernetes().start()
    yield fake
    fake.stop()


@pytest.fixture
def kube(kube_server: FakeKubernetes) -> Iterator[FakeKubernetes]:
    """The Kubernetes fake with its default namespaces and ClusterRoles only, checked for
    its own errors after the test."""
    kube_server.reset()
    yield kube_server
    assert not kube_server.internal_errors, kube_server.internal_errors
