"""The GitHub adapter: pre-deploy checks, pull requests and reviews, comparisons and files,
read over GitHub's REST API (``bot.github.client``), and a stand-in for ``releasebot dev``
and the tests (``bot.github.standin``)."""
