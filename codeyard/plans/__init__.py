"""Plans that become tickets (issue 19): a goal → the utility model's proposed tickets with
their dependencies → edited by a person → accepted into real tickets in one transaction.

``domain`` is pure (the proposal's shape and its dependency rules, the order tickets are
numbered in); ``store`` reads and writes plan rows; ``service`` holds the use cases the router
in ``codeyard/api/plans.py`` calls.
"""
