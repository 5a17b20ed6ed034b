"""The release engine: plain Python, no Slack, HTTP or SQL inside.

Adapters (``bot.slack``, ``bot.cloudflare``, ``storage``) implement the Protocols in
:mod:`bot.engine.ports`; the engine never imports them.
"""
