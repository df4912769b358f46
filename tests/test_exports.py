"""The public surface, pinned (as httpx's tests/test_exported_members.py and trio's test_exports.py do).

- Each public package's ``__all__`` is exactly the set below: adding or removing a public name is
  a decision made here, in review, not a side effect of an import.
- Every name in ``__all__`` is importable, and every public attribute of the package is in it.
- No class a user needs is reachable only through a private (``_x``) module: each class defined
  in a private module is exported by a public package or listed in ``INTERNAL`` with a reason.
- Optional pieces are imported on first use: ``trioworks.services`` does not load one service's
  models for another, and ``trioworks.server`` works without psycopg.
- The package docstring lists every subsystem.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

import trioworks

# trioworks.bus: one class per topic of the spec (bus/_contracts.py), plus the bus itself.
CONTRACTS = {
    "CharacterGet",
    "CharacterResult",
    "CharacterSection",
    "CharacterUpdate",
    "ConversationMessage",
    "FinalTranscript",
    "HealthStatus",
    "LLMCancel",
    "LLMParams",
    "LLMRequest",
    "LLMResponse",
    "LLMStreamDelta",
    "MemoryQuery",
    "MemoryResult",
    "MemoryResults",
    "MicCommand",
    "PartialTranscript",
    "ToolCallRequest",
    "ToolCallResult",
    "ToolFunction",
    "ToolSpec",
    "ToolsRegistry",
    "TtsControl",
    "TtsOutput",
    "TtsSay",
    "TtsStatus",
    "WakeEvent",
}

PUBLIC: dict[str, set[str]] = {
    "trioworks": {
        "__version__",
    },
    "trioworks.client": {
        "Activity",
        "ActivityOutputDefinition",
        "ActivitySettings",
        "And",
        "AsyncClient",
        "AsyncKruxiaFlow",
        "AuthenticationError",
        "BackoffStrategy",
        "BudgetAction",
        "BudgetSettings",
        "CacheSettings",
        "Client",
        "Comparison",
        "Contains",
        "Dependency",
        "DeploymentError",
        "EnvRef",
        "Eq",
        "Expression",
        "Ge",
        "Gt",
        "In",
        "Input",
        "IsNotNull",
        "IsNull",
        "KruxiaFlow",
        "KruxiaFlowError",
        "Le",
        "Literal",
        "Lt",
        "Ne",
        "Not",
        "Or",
        "OutputComparison",
        "OutputRef",
        "OutputType",
        "RetrySettings",
        "ScriptActivity",
        "SecretRef",
        "TERMINAL_STATUSES",
        "Workflow",
        "WorkflowNotFoundError",
        "WorkflowRef",
        "and_",
        "contains",
        "in_",
        "is_not_null",
        "is_null",
        "not_",
        "or_",
        "script",
        "workflow",
    },
    "trioworks.core": {
        "CancelOutcome",
        "Correlator",
        "Counter",
        "DuplicateCorrelationId",
        "Gauge",
        "Metrics",
        "PROMETHEUS_CONTENT_TYPE",
        "RestartIntensityExceeded",
        "RestartPolicy",
        "RetryPolicy",
        "ThreadBatcher",
        "Waiter",
        "child_process",
        "find_error",
        "lazy_exports",
        "leaf_errors",
        "prometheus_text",
        "read_exactly",
        "retry",
        "run_in_process",
        "run_in_thread",
        "serve_prometheus",
        "single_error",
        "start_process",
        "stop_process",
        "supervise",
    },
    "trioworks.dag": {
        "AsyncHTTPRequestNode",
        "DistributedRuntime",
        "NodeImportError",
        "NodeOutputError",
        "NodeRunner",
        "RemoteNodeError",
        "RemoteNodeFailure",
        "compile_workflow",
        "AsyncLocalRuntime",
        "AsyncNode",
        "AsyncPythonCodeNode",
        "CSVReaderNode",
        "CSVWriterNode",
        "CircuitBreakerPolicy",
        "CircuitOpenError",
        "CodeNodeError",
        "Connection",
        "ConnectionError",
        "CycleConfigurationError",
        "CycleError",
        "CycleException",
        "DagError",
        "Edge",
        "EmbeddingGeneratorNode",
        "HTTPRequestNode",
        "HardTimeLimitExceeded",
        "HealthState",
        "HealthStatus",
        "JSONReaderNode",
        "JSONWriterNode",
        "KailashException",
        "LLMAgentNode",
        "LocalRuntime",
        "LocalRuntimeExecutionError",
        "MappingPathError",
        "MergeNode",
        "NODE_TYPES",
        "Node",
        "NodeConfigurationError",
        "NodeEvent",
        "NodeException",
        "NodeExecutionError",
        "NodeInputError",
        "NodeKind",
        "NodeMetadata",
        "NodeParameter",
        "NodeRegistry",
        "NodeSpec",
        "NodeStatus",
        "NodeTimeoutError",
        "NodeValidationError",
        "Plan",
        "PythonCodeNode",
        "Resource",
        "ResourceCreationError",
        "ResourceError",
        "ResourceFactory",
        "ResourceNotFoundError",
        "ResourceRegistry",
        "RetryPolicy",
        "RuntimeException",
        "RuntimeExecutionError",
        "SQLDatabaseNode",
        "SoftTimeLimitExceeded",
        "SwitchNode",
        "TextReaderNode",
        "TextWriterNode",
        "UnknownResourceError",
        "Workflow",
        "WorkflowBuilder",
        "WorkflowException",
        "WorkflowExecutionError",
        "WorkflowNode",
        "WorkflowResult",
        "WorkflowTimeoutError",
        "WorkflowValidationError",
        "register_node",
        "to_dot",
        "to_mermaid",
    },
    "trioworks.worker": {
        "DAG_WORKER",
        "dag_activities",
        "Activity",
        "ActivityContext",
        "ActivityDefinition",
        "ActivityError",
        "ActivityFiles",
        "ActivityKind",
        "ActivityOutput",
        "ActivityResult",
        "ApiError",
        "AuthenticationError",
        "CancelReason",
        "ConfigError",
        "ENV_VARS",
        "FileReference",
        "InvalidParameters",
        "LeaseLostError",
        "OutputType",
        "PendingActivity",
        "TerminalActivityError",
        "UsageEntry",
        "Worker",
        "WorkerApiClient",
        "WorkerConfig",
        "WorkerError",
        "WorkerStats",
        "activity",
    },
    "trioworks.worker.std": {
        "DEFAULT_MAX_RESPONSE_BYTES",
        "EmbeddingParams",
        "HttpRequestParams",
        "LLMPromptParams",
        "PY_STD_ACTIVITIES",
        "PY_STD_WORKER",
        "PostgresQueryParams",
        "PostgresTransactionParams",
        "STD_ACTIVITIES",
        "STD_WORKER",
        "ScriptParams",
        "TransactionStatement",
        "echo",
        "embedding",
        "estimate_tokens",
        "http_request",
        "llm_prompt",
        "postgres_query",
        "postgres_transaction",
        "script",
        "std_activities",
    },
    "trioworks.server": {
        "ActivityDef",
        "ActivityRow",
        "ActivityStatus",
        "BadRequest",
        "Cadence",
        "Client",
        "ConfigurationError",
        "Conflict",
        "Definition",
        "DefinitionSummary",
        "Dependency",
        "Dialect",
        "FileRecord",
        "Forbidden",
        "NewSchedule",
        "NotFound",
        "OutputDef",
        "PayloadTooLarge",
        "PendingActivity",
        "PostgresStorage",
        "PutDefinitionResult",
        "RetrySettings",
        "SQLiteStorage",
        "ScheduleChanges",
        "ScheduleFire",
        "ScheduleRow",
        "Server",
        "ServerConfig",
        "ServerError",
        "SqlStorage",
        "Storage",
        "StorageUnavailable",
        "StoredDefinition",
        "TemplateError",
        "Unauthorized",
        "UnsupportedMediaType",
        "ValidationFailed",
        "WorkflowPage",
        "WorkflowRow",
        "WorkflowStatus",
        "load_clients_file",
        "mask_url",
        "open_storage",
        "parse_clients",
        "parse_definition",
    },
    # The server's three layers: what each offers the others (trioworks.server is the stable API).
    "trioworks.server.http": {
        "Authenticator",
        "Client",
        "Context",
        "asgi_responder",
        "build_app",
        "direct_responder",
        "load_clients_file",
        "parse_clients",
        "secret_from_file",
        "serve_http",
    },
    "trioworks.server.rules": {
        "KEY_PATTERN",
        "OVERLAP_POLICIES",
        "Cadence",
        "Loop",
        "MissingSecret",
        "Plan",
        "Progress",
        "RowSource",
        "SignalWait",
        "TemplateError",
        "advance",
        "cadence_errors",
        "claim_row",
        "complete_row",
        "expire_row",
        "fail_row",
        "fail_workflow",
        "fill_secrets",
        "make_plan",
        "missing_inputs",
        "new_activities",
        "next_occurrence",
        "owned_check",
        "parse_definition",
        "pending_activity",
        "progress",
        "required_inputs",
        "secret_names",
        "secrets_from_env",
        "signal_wait",
        "start_row",
        "template_context",
        "undeliverable_row",
        "wait_timeout",
        "waiting_counts",
        "workflow_cancellation",
        "workflow_failure",
    },
    "trioworks.server.storage": {
        "BATCHABLE",
        "FILENAME",
        "POSTGRES",
        "SQLITE",
        "Connections",
        "Dialect",
        "FileStore",
        "PostgresConnections",
        "PostgresStorage",
        "SQLiteConnections",
        "SQLiteStorage",
        "SqlStorage",
        "Storage",
        "StorageCall",
        "Tx",
        "check_filename",
        "mask_url",
        "open_storage",
        "run_each",
    },
    "trioworks.bus": CONTRACTS
    | {
        "Bus",
        "BusError",
        "ContractError",
        "BARE_SOURCE",
        "DEFAULT_MAX_PAYLOAD",
        "MAX_DEPTH",
        "Envelope",
        "EnvelopeError",
        "Handler",
        "InProcessBroker",
        "InProcessTransport",
        "MalformedHandler",
        "Message",
        "MqttError",
        "MqttTransport",
        "Overflow",
        "PayloadTooLarge",
        "RawMessage",
        "RequestTimeout",
        "Route",
        "Salvage",
        "Service",
        "ServiceFailed",
        "Sink",
        "Subscription",
        "TOPICS",
        "Task",
        "TopicError",
        "TopicSpec",
        "Transport",
        "converter",
        "decode",
        "encode",
        "matches",
        "new_id",
        "run_service",
        "salvage",
        "spec_for",
        "validate_filter",
        "validate_topic",
    },
    "trioworks.services": {
        "BOUNDARIES",
        "PYTARS_NAMES",
        "SERVICE_NAMES",
        "PersonaConfig",
        "PersonaConfigError",
        "PersonaService",
        "BrokerUnavailable",
        "LLMConfig",
        "LLMConfigError",
        "LLMService",
        "MemoryConfig",
        "MemoryConfigError",
        "MemoryService",
        "OPTIONAL_SERVICE_NAMES",
        "RouterConfig",
        "RouterConfigError",
        "RouterService",
        "SentenceChunker",
        "SettingError",
        "SttConfig",
        "SttConfigError",
        "SttService",
        "TtsConfig",
        "TtsConfigError",
        "TtsService",
        "ProgramMissing",
        "SayResult",
        "TurnResult",
        "VoiceSettings",
        "VoiceStack",
        "VoiceStackError",
        "WakeConfig",
        "WakeConfigError",
        "WakeService",
        "ask_once",
        "chunk_sentences",
        "default_data_dir",
        "find_program",
        "local_broker",
        "mosquitto_conf",
        "say",
        "voice_turn",
    },
    "trioworks.services.llm": {
        "Backend",
        "BackendError",
        "CANCELLED",
        "CONTEXT_MARKER",
        "ChatMessage",
        "Completion",
        "LLMConfig",
        "LLMConfigError",
        "LLMService",
        "OfflineBackend",
        "OnDelta",
        "OpenAIBackend",
        "StreamParser",
        "ToolCall",
        "ToolCaller",
        "make_backend",
    },
    "trioworks.services.memory": {
        "Bm25Indexer",
        "Corpus",
        "Document",
        "Embedder",
        "IndexedPrefix",
        "MemoryConfig",
        "MemoryConfigError",
        "MemoryService",
        "MemoryStore",
        "MemoryStoreError",
        "MiniLM",
        "ModelNotInstalled",
        "NewDocument",
        "RRF_K",
        "Snapshot",
        "bm25_rankings",
        "build_index",
        "default_model_dir",
        "dense_top",
        "estimate_tokens",
        "forget_documents",
        "install_weights",
        "read_documents",
        "rrf_fuse",
        "search",
        "tokenize",
        "top_indices",
    },
    "trioworks.services.persona": {
        "DEFAULT_CHARACTER",
        "PersonaConfig",
        "PersonaConfigError",
        "PersonaService",
        "load_character",
    },
    "trioworks.services.router": {
        "BOUNDARIES",
        "Exchange",
        "History",
        "RouterConfig",
        "RouterConfigError",
        "RouterService",
        "SentenceChunker",
        "TurnEnd",
        "WakeWindow",
        "chunk_sentences",
    },
    "trioworks.services.stt": {
        "AsyncRecognizer",
        "AudioError",
        "AudioSource",
        "ProcessRecognizer",
        "ProgramMissing",
        "Recognition",
        "Recognizer",
        "RecognizerDied",
        "SttConfig",
        "SttConfigError",
        "SttService",
        "ThreadRecognizer",
        "VoiceUnavailable",
        "WyomingRecognizer",
        "grammar_for",
        "mic_source",
        "open_recognizer",
        "pcm_source",
        "stream_source",
        "wav_source",
    },
    "trioworks.services.tts": {
        "AudioError",
        "CommandSink",
        "DEFAULT_OUT_DIR",
        "Output",
        "PlaybackClock",
        "ProgramMissing",
        "Sink",
        "Synthesis",
        "SynthesisError",
        "Synthesizer",
        "TtsConfig",
        "TtsConfigError",
        "TtsService",
        "WavSink",
        "WyomingSynthesizer",
        "detect_player",
        "synthesize",
    },
    "trioworks.services.wyoming": {
        "AUDIO_FORMAT",
        "WyomingConnection",
        "WyomingError",
        "WyomingEvent",
        "connect",
        "describe",
        "parse_url",
    },
    "trioworks.services.wake": {
        "AsyncDetector",
        "CANCEL_PHRASES",
        "Detection",
        "Spotter",
        "ThreadDetector",
        "WakeConfig",
        "WakeConfigError",
        "WakeService",
        "WyomingWake",
    },
    "trioworks.demo": {
        "ACTIVITIES",
        "DEFINITION",
        "FACTS",
        "FlowRun",
        "FlowStep",
        "Highlight",
        "INPUT",
        "PHRASES",
        "QUESTION",
        "VOICE",
        "VoiceRun",
        "WORKER",
        "ask_question",
        "build_workflow",
        "dag_highlights",
        "flow_highlights",
        "resources",
        "run_flow",
        "voice_highlights",
    },
    "trioworks.cli": {
        "COMMANDS",
        "main",
    },
}

# The command line's public surface is the command line itself (tests/cli); its modules are all private.
CLI = "trioworks.cli"

# Classes defined in private modules that are deliberately not exported, with why.
INTERNAL: dict[str, set[str]] = {
    # The worker routes served without Starlette: build_app makes it, direct_responder uses it.
    "trioworks.server.http._fast": {"FastRoutes"},
    # The child-process side of the script activity: what a user script sees as ``ctx``.
    "trioworks.worker.std._script_child": {"ScriptContext"},
    # A structural protocol: any object with create() is a factory; nobody needs to import it.
    "trioworks.dag._resources": {"SupportsCreate"},
    # Kailash's cycle API: create_cycle() returns the builder, whose build() adds the spec; users
    # chain the calls and never name either class. The runtime's context-manager/close mixin.
    # The cycle runner's insides: the parsed convergence expression, a compiled group of cycles
    # and the run that iterates them; the runtime picks them for a workflow with cycles.
    "trioworks.dag._builder": {"CycleSpec"},
    "trioworks.dag._cycle_spec": {"ConvergenceExpression", "CycleBuilder"},
    "trioworks.dag._cycles": {"CycleGroup", "CyclicRun"},
    "trioworks.dag._lifecycle": {"RuntimeLifecycle"},
    # How the dag worker moves large values: the file transfers it hands the runner (the worker's
    # ActivityContext fits the protocol) and the local file an output was written to.
    "trioworks.dag._values": {"Offloaded", "ValueFiles"},
    # The server's insides: how a route is declared, parsed bodies, the SQL layer's parts under
    # SqlStorage, template evaluation. Users see Server, Storage and the models.
    "trioworks.server.http._routes": {"Endpoint", "Routes"},
    # The nudge that makes the server's signal-timeout timer read the earliest deadline again.
    "trioworks.server.http._context": {"Wakeup"},
    # The HTTP front's insides: one connection's HTTP/1.1 state and its errors, one request's
    # ASGI receive/send; serve_http and the responders are the layer's interface.
    "trioworks.server.http._h1": {"ClientGone", "H1Connection", "ProtocolError", "RequestHead"},
    "trioworks.server.http._asgi": {"Exchange"},
    "trioworks.server.http._requests": {
        "CompleteRequest",
        "FailRequest",
        "PollRequest",
        "SignalRequest",
        "SubmitRequest",
        "WorkerRequest",
    },
    "trioworks.server.rules._templates": {"TemplateContext", "Unresolved"},
    # settings.delay / scheduled_for / wait_for_signal parsing behind the engine's start_row.
    "trioworks.server.rules._timing": {"ScheduleError"},
    "trioworks.server.storage._queue": {"SqlQueue"},
    "trioworks.server.storage._schedules": {"SqlSchedules"},
    "trioworks.server.storage._tables": {"Tables"},
    # A WAV header's numbers, inside the stt sources and tts sinks.
    "trioworks.services._audio": {"AudioFormat"},
    # The voice turn's bus observer (and what it saw) behind ask_once, voice_turn and say.
    "trioworks.services._turn": {"Seen", "Watch"},
    # The worker's machinery behind Worker: the per-activity runner, its limiters and report.
    "trioworks.worker._execute": {"ActivityRunner", "Limiters", "Report"},
    "trioworks.worker._heartbeats": {"Heartbeat", "HeartbeatStarter"},
    # A result's output encoded once (checked to be JSON, then sent as it is by complete).
    "trioworks.worker._client": {"EncodedJSON"},
    # The worker's HTTP transport (coalesced writes, proxy from the environment) inside its client.
    "trioworks.worker._transport": {"WorkerTransport"},
    # Its direct path for the small JSON calls (request bytes, httptools, kept-alive connections).
    "trioworks.worker._direct": {"DirectPool", "Reply"},
}

SUBSYSTEMS = {"bus", "cli", "client", "core", "dag", "demo", "server", "services", "worker"}


def _private_modules() -> list[str]:
    """Every module of trioworks with a ``_x`` part in its name, outside the command line."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(trioworks.__path__, "trioworks.")
        if any(part.startswith("_") for part in info.name.split(".")[1:])
        and not info.name.startswith(f"{CLI}.")
    )


def _exported_objects() -> dict[int, str]:
    """id of each object some public package exports -> ``package.name``."""
    found: dict[int, str] = {}
    for package in PUBLIC:
        module = importlib.import_module(package)
        for name in module.__all__:
            found.setdefault(id(getattr(module, name)), f"{package}.{name}")
    return found


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_exactly_the_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__)), f"{package}.__all__ has duplicates"
    added = set(module.__all__) - PUBLIC[package]
    removed = PUBLIC[package] - set(module.__all__)
    assert not added and not removed, (
        f"{package}.__all__ changed: added {sorted(added)}, removed {sorted(removed)}; "
        "if intended, update PUBLIC in tests/test_exports.py"
    )


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_name_in_all_is_importable(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        namespace: dict[str, object] = {}
        exec(f"from {package} import {name}", namespace)  # the user's spelling, lazy names included
        assert namespace[name] is getattr(module, name)
        assert name in dir(module), f"{package}.{name} is missing from dir()"


@pytest.mark.parametrize("package", sorted(set(PUBLIC) - {CLI}))
def test_every_public_attribute_is_in_all(package: str) -> None:
    """No public-looking name that is not in ``__all__`` (subpackages aside)."""
    module = importlib.import_module(package)
    stray = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - set(module.__all__)
    assert not stray, f"{package} has public names outside __all__: {sorted(stray)}"


def test_pinned_packages_are_every_public_package() -> None:
    public = {
        info.name
        for info in pkgutil.walk_packages(trioworks.__path__, "trioworks.")
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")[1:])
    }
    assert public | {"trioworks"} == set(PUBLIC)


@pytest.mark.parametrize("module_name", _private_modules())
def test_no_class_is_reachable_only_through_a_private_module(module_name: str) -> None:
    exported = _exported_objects()
    module = importlib.import_module(module_name)
    hidden = {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and value.__module__ == module_name  # defined here, not imported
        and not name.startswith("_")
        and id(value) not in exported
    }
    internal = INTERNAL.get(module_name, set())
    assert hidden == internal, (
        f"classes of {module_name} not exported by any public package: {sorted(hidden - internal)} "
        f"(export them, or list them in INTERNAL with a reason); "
        f"listed as internal but exported or gone: {sorted(internal - hidden)}"
    )


def test_internal_lists_only_existing_private_modules() -> None:
    assert set(INTERNAL) <= set(_private_modules())


def test_lazy_exports_load_only_what_is_asked_for() -> None:
    """``trioworks.services`` loads one service's subpackage, not the others' models;
    ``trioworks.server`` imports psycopg only for PostgresStorage; the demo's ETL, imported by
    worker processes, loads neither the server nor the worker."""
    script = (
        "import sys\n"
        "import trioworks.demo.etl\n"
        "heavy = {m for m in ('trioworks.server', 'trioworks.worker', 'trioworks.services') if m in sys.modules}\n"
        "assert not heavy, f'trioworks.demo.etl (imported by worker processes) loaded {heavy}'\n"
        "import trioworks.server\n"
        "assert 'psycopg' not in sys.modules, 'trioworks.server imported psycopg'\n"
        "from trioworks.services import TtsService\n"
        "assert TtsService.__module__.startswith('trioworks.services.tts.')\n"
        "loaded = {m for m in ('memory', 'stt', 'llm', 'router') if f'trioworks.services.{m}' in sys.modules}\n"
        "assert not loaded, f'importing TtsService loaded {loaded}'\n"
        "from trioworks.services import VoiceSettings\n"
        "assert 'trioworks.services.memory' not in sys.modules, 'VoiceSettings loaded the memory service'\n"
        "from trioworks.server import PostgresStorage\n"
        "assert 'psycopg' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_unknown_names_raise_attribute_error() -> None:
    for package in ("trioworks.server", "trioworks.services", "trioworks.demo"):
        module = importlib.import_module(package)
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018


def test_package_docstring_lists_every_subsystem() -> None:
    subpackages = {info.name for info in pkgutil.iter_modules(trioworks.__path__) if info.ispkg}
    assert subpackages == SUBSYSTEMS
    assert trioworks.__doc__ is not None
    missing = {name for name in SUBSYSTEMS if f":mod:`trioworks.{name}`" in trioworks.__doc__} ^ SUBSYSTEMS
    assert not missing, f"the trioworks docstring does not list {sorted(missing)}"
