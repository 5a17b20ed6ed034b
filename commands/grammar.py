"""The ``/release`` grammar as data: one :class:`Spec` per subcommand.

The parser reads these specs to turn text into commands, and the help text and usage lines
are generated from them, so the two cannot drift apart. Adding a subcommand means adding a
dataclass in :mod:`commands.model` and a spec here.

>>> SPECS["history"].usage()
'/release history <service> [<env>] [--limit N]'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from commands import model

# What a value must look like; the parser checks and normalises each kind.
Kind = Literal["name", "version", "release_id", "text", "when", "since", "int", "choice", "topic"]


@dataclass(frozen=True, slots=True)
class Arg:
    """A positional argument, or a keyword one (``to <env>``) when ``keyword`` is set.

    ``field`` is the command's dataclass field; ``greedy`` takes every word up to the next
    option (``until friday 18:00``).
    """

    field: str
    kind: Kind
    metavar: str
    label: str
    optional: bool = False
    keyword: str | None = None
    greedy: bool = False

    def usage(self) -> str:
        text = f"{self.keyword} {self.metavar}" if self.keyword else self.metavar
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True, slots=True)
class Flag:
    """An option ``--name value`` (or ``--name=value``); a ``bool`` flag takes no value."""

    name: str
    field: str
    kind: Kind | Literal["bool"]
    metavar: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: int = 1
    maximum: int = 0

    def usage(self) -> str:
        if self.kind == "bool":
            return f"[--{self.name}]"
        return f"[--{self.name} {self.metavar}]"


@dataclass(frozen=True, slots=True)
class Spec:
    """One subcommand: its words, its options and the words that explain it."""

    name: str
    command: type[model.Command]
    summary: str
    description: str
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()
    # Examples are written without the command name, which is configurable.
    examples: tuple[str, ...] = ()

    def usage(self, command_name: str = "/release") -> str:
        words = [command_name, self.name]
        words += [arg.usage() for arg in self.args]
        words += [flag.usage() for flag in self.flags]
        return " ".join(words)

    @property
    def keywords(self) -> dict[str, Arg]:
        return {arg.keyword: arg for arg in self.args if arg.keyword}

    def flag(self, name: str) -> Flag | None:
        return next((flag for flag in self.flags if flag.name == name), None)


SERVICE = Arg("service", "name", "<service>", "the service")
SERVICE_OPT = Arg("service", "name", "<service>", "the service", optional=True)
ENV = Arg("env", "name", "<env>", "the environment")
ENV_OPT = Arg("env", "name", "<env>", "the environment", optional=True)
ENV_TO = Arg("env", "name", "<env>", "the environment", optional=True, keyword="to")
RELEASE = Arg("release_id", "release_id", "<release-id>", "the release id")

REASON = Flag("reason", "reason", "text", '"..."', "why, in words; quote a reason of several words")


def _release_action(name: str, command: type[model.Command], summary: str, text: str) -> Spec:
    """A subcommand whose only argument is a release id."""
    return Spec(name, command, summary, text, args=(RELEASE,), examples=(f"{name} R-42",))


_SPEC_LIST: tuple[Spec, ...] = (
    Spec(
        "deploy",
        model.Deploy,
        "deploy a version of a service",
        "Starts a release of <version> (a Worker version id, or a tag that names exactly one "
        "uploaded version). Approvals and the rollout follow the environment's policy; "
        "<env> defaults to the service's first environment.",
        args=(SERVICE, Arg("version", "version", "<version>", "the version"), ENV_TO),
        flags=(
            REASON,
            Flag(
                "strategy",
                "strategy",
                "choice",
                "gradual|immediate",
                "gradual follows the policy's rollout steps; immediate goes to 100% at once",
                choices=("gradual", "immediate"),
            ),
            Flag(
                "emergency",
                "emergency",
                "bool",
                "",
                "break glass: deploy during a freeze (needs --reason; audited)",
            ),
        ),
        examples=(
            'deploy tax-api 3f2c9a1e to production --reason "fix rounding"',
            "deploy tax-api v2.4.1 to staging --strategy immediate",
            'deploy tax-api v2.4.2 to production --emergency --reason "INC-7 hotfix"',
        ),
    ),
    Spec(
        "plan",
        model.Plan,
        "dry run: show what a deploy would do, changing nothing",
        "Shows the policy, the approvers needed, the rollout steps, and any lock or freeze "
        "that would stop the deploy.",
        args=(SERVICE, Arg("version", "version", "<version>", "the version"), ENV_TO),
        examples=("plan tax-api v2.4.1 to production",),
    ),
    Spec(
        "rollback",
        model.Rollback,
        "return a service to an earlier version",
        "Without `to <version>`, returns to the version that served 100% before the last "
        "completed release, in one deployment.",
        args=(
            SERVICE,
            Arg("env", "name", "<env>", "the environment", optional=True, keyword="in"),
            Arg("to_version", "version", "<version>", "the version", optional=True, keyword="to"),
        ),
        flags=(REASON,),
        examples=(
            'rollback tax-api in production --reason "errors up"',
            "rollback tax-api in staging to v2.3.0",
        ),
    ),
    Spec(
        "status",
        model.Status,
        "show what is live and the releases in flight",
        "Shows the live traffic split read from Cloudflare; without a service, every service.",
        args=(SERVICE_OPT, ENV_OPT),
        examples=("status", "status tax-api production"),
    ),
    Spec(
        "history",
        model.History,
        "list past releases of a service",
        "Newest first.",
        args=(SERVICE, ENV_OPT),
        flags=(Flag("limit", "limit", "int", "N", "how many releases (1-100)", maximum=100),),
        examples=("history tax-api production --limit 5",),
    ),
    Spec(
        "versions",
        model.Versions,
        "list the uploaded versions of a service",
        "Lists the uploaded versions with their ids and tags.",
        args=(SERVICE, ENV_OPT),
        examples=("versions tax-api staging",),
    ),
    Spec(
        "health",
        model.Health,
        "show error rates and health checks of a service",
        "Shows the error rates of the live versions and the health check's answer.",
        args=(SERVICE, ENV_OPT),
        examples=("health tax-api production",),
    ),
    _release_action(
        "approve",
        model.Approve,
        "approve a release waiting for approval",
        "Adds your approval; the release goes ahead once the policy's approvals are in.",
    ),
    Spec(
        "reject",
        model.Reject,
        "reject a release waiting for approval",
        "Ends a release waiting for approval; nothing is deployed.",
        args=(RELEASE,),
        flags=(REASON,),
        examples=('reject R-42 --reason "needs a changelog"',),
    ),
    _release_action(
        "cancel",
        model.Cancel,
        "cancel a release that has not finished",
        "Stops a release that has not finished.",
    ),
    _release_action(
        "promote",
        model.Promote,
        "move a gradual rollout to its next step now",
        "Moves the rollout on without waiting for the rest of the current bake.",
    ),
    _release_action(
        "pause",
        model.Pause,
        "hold a gradual rollout at its current step",
        "Traffic stays as it is until the release is resumed or cancelled.",
    ),
    _release_action(
        "resume",
        model.Resume,
        "continue a paused rollout",
        "Continues the rollout from its current step.",
    ),
    Spec(
        "lock",
        model.Lock,
        "stop deploys of a service to an environment",
        "Nobody can deploy the service there until it is unlocked.",
        args=(SERVICE, ENV),
        flags=(REASON,),
        examples=('lock tax-api production --reason "migration running"',),
    ),
    Spec(
        "unlock",
        model.Unlock,
        "lift a lock",
        "Deploys of the service to the environment are allowed again.",
        args=(SERVICE, ENV),
        examples=("unlock tax-api production",),
    ),
    Spec(
        "freeze",
        model.Freeze,
        "stop all deploys to an environment until a time",
        "<when> is a date or time (2026-12-01 18:00), a weekday (friday 18:00), "
        "tomorrow [09:00], today 18:00, or a duration (2h, 1h30m, 3d); a day without a "
        "time lasts through that day (until tomorrow: to the midnight after tomorrow). "
        "Only --emergency deploys pass a freeze.",
        args=(ENV, Arg("until", "when", "<when>", "the time", keyword="until", greedy=True)),
        flags=(REASON,),
        examples=(
            'freeze production until friday 18:00 --reason "release week"',
            "freeze staging until 2h",
        ),
    ),
    Spec(
        "unfreeze",
        model.Unfreeze,
        "end a freeze early",
        "Deploys to the environment are allowed again.",
        args=(ENV,),
        examples=("unfreeze production",),
    ),
    Spec(
        "restore-db",
        model.RestoreDb,
        "restore the D1 database to its bookmark from before a release",
        "Restores the service's D1 database to the bookmark taken before that release.",
        args=(RELEASE,),
        examples=("restore-db R-42",),
    ),
    Spec(
        "stats",
        model.Stats,
        "delivery metrics: frequency, lead time, change failure rate, MTTR",
        "Over the last N days (--days); without a service, every service.",
        args=(SERVICE_OPT,),
        flags=(Flag("days", "days", "int", "N", "how many days back (1-365)", maximum=365),),
        examples=("stats", "stats tax-api --days 30"),
    ),
    Spec(
        "audit",
        model.Audit,
        "show the audit trail",
        "Records of every action; --since takes a date or time, a weekday, or a duration "
        "(2h, 7d) counted back from now.",
        args=(SERVICE_OPT,),
        flags=(Flag("since", "since", "since", "<when>", "only records from this time on"),),
        examples=("audit tax-api --since 7d", "audit --since 2026-11-01"),
    ),
    Spec(
        "migrations",
        model.Migrations,
        "list the applied and pending D1 migrations of a service",
        "Lists what the database's d1_migrations table holds and the migration files it does "
        "not have yet (applied by the next deploy).",
        args=(SERVICE, ENV_OPT),
        examples=("migrations tax-api production",),
    ),
    Spec(
        "help",
        model.Help,
        "show this help, or the help of one subcommand",
        "Lists every subcommand, or explains one with its options and examples.",
        args=(Arg("topic", "topic", "<subcommand>", "the subcommand", optional=True),),
        examples=("help", "help deploy"),
    ),
)

SPECS: dict[str, Spec] = {spec.name: spec for spec in _SPEC_LIST}
