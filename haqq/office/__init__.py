"""The one-stop shop's use cases: what caseworkers, supervisors, auditors and citizens do
through the console and the API (search, a person's picture, the review queue, appeals,
declining, the dashboard, the program catalogue). Each action is one function taking a
connection, the principal and values; the HTTP entry points stay thin."""
