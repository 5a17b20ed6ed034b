"""Help text generated from the grammar, so it always matches what the parser accepts.

The text uses Slack mrkdwn (``*bold*``, backticks) and plain ``<`` and ``>`` in usage lines;
the Slack layer escapes those before posting.

>>> print(help_text("unfreeze", command_name="/deploybot"))
`/deploybot unfreeze <env>`
End a freeze early. Deploys to the environment are allowed again.
<BLANKLINE>
*Arguments*
• `<env>`: an environment name, e.g. production
<BLANKLINE>
*Examples*
• `/deploybot unfreeze production`
"""

from __future__ import annotations

from commands.errors import UnknownSubcommand, closest, did_you_mean, quoted
from commands.grammar import SPECS, Spec
from commands.when import FORMS_HINT

# What each placeholder stands for, keyed by its metavar.
_ARG_HELP = {
    "<service>": "a service name from the bot's config, e.g. tax-api",
    "<env>": "an environment name, e.g. production",
    "<version>": "a Worker version id, or a tag that names exactly one uploaded version",
    "<release-id>": "a release id such as R-42 (r-42, 42 and #R-42 work too)",
    "<when>": f"a time; {FORMS_HINT}",
    "<subcommand>": "one of the subcommands listed by help",
}


def help_text(topic: str | None = None, command_name: str = "/release") -> str:
    """The help overview (``topic`` None) or one subcommand's help.

    Raises :class:`~commands.errors.UnknownSubcommand` (a ``UsageError``) for an unknown
    topic, suggesting the closest subcommands.

    >>> help_text(command_name="/deploybot").splitlines()[0]
    '*/deploybot* deploys Cloudflare Workers from Slack. Subcommands:'
    """
    if topic is None or not topic.strip():
        return _overview(command_name)
    spec = SPECS.get(topic.strip().lower())
    if spec is None:
        suggestions = closest(topic.strip(), SPECS)
        raise UnknownSubcommand(
            f"no help on {quoted(topic.strip())}: it is not a subcommand"
            + did_you_mean(suggestions),
            token=topic,
            usage=SPECS["help"].usage(command_name),
            suggestions=suggestions,
            command_name=command_name,
        )
    return _topic(spec, command_name)


def _overview(command_name: str) -> str:
    lines = [f"*{command_name}* deploys Cloudflare Workers from Slack. Subcommands:"]
    lines += [f"• `{spec.usage(command_name)}`: {spec.summary}" for spec in SPECS.values()]
    lines.append(f"Type `{command_name} help <subcommand>` for its options and examples.")
    return "\n".join(lines)


def _topic(spec: Spec, command_name: str) -> str:
    summary = spec.summary[0].upper() + spec.summary[1:]
    lines = [f"`{spec.usage(command_name)}`", f"{summary}. {spec.description}"]
    metavars = dict.fromkeys(arg.metavar for arg in spec.args)
    if metavars:
        lines += ["", "*Arguments*"]
        lines += [f"• `{metavar}`: {_ARG_HELP[metavar]}" for metavar in metavars]
    if spec.flags:
        lines += ["", "*Options*"]
        for flag in spec.flags:
            shown = f"--{flag.name}" + (f" {flag.metavar}" if flag.kind != "bool" else "")
            lines.append(f"• `{shown}`: {flag.help}")
    if spec.examples:
        lines += ["", "*Examples*"]
        lines += [f"• `{command_name} {example}`" for example in spec.examples]
    return "\n".join(lines)
