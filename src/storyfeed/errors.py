"""The storyfeed exception tree.

Every error a user or a server can cause is a ``StoryfeedError``; the CLI turns
it into one ``storyfeed: error: ...`` line and exit status 1. Anything else is
a bug.

    StoryfeedError
    ├── ConfigError            config.toml unreadable or invalid; an unusable proxy
    ├── NotFoundError          no such story or feed
    │   └── AmbiguousFeedError several feeds match a FEED argument
    ├── InvalidURLError        not an http(s)/file URL or an existing path
    ├── DuplicateFeedError     already subscribed
    ├── UnsafeLinkError        a story link that may not be opened
    ├── SearchQueryError       a search query with nothing to search for
    ├── FetchError             the server or the network failed (add only: a refresh
    │                          records a failed fetch on its feed instead)
    ├── ParseError             the document is not a usable feed
    │   └── NotAFeedError      HTML, empty, or another kind of document
    ├── InvalidOPMLError       a subscription list that is not well-formed OPML
    ├── FileAccessError        a file named on the command line cannot be read or written
    └── StoreError             the database cannot be used
        ├── DatabaseCorruptError   not a SQLite file or damaged
        ├── DatabaseTooNewError    written by a newer storyfeed
        └── DatabaseBusyError      locked by another process for too long

Messages never contain a password: URLs are redacted before they are
formatted into one.
"""


class StoryfeedError(Exception):
    """An error the user can act on; its message is one line."""


class ConfigError(StoryfeedError):
    """The configuration file cannot be read or holds an invalid value (or the
    environment names a proxy that cannot be used)."""


class NotFoundError(StoryfeedError):
    """No story or feed has the given id, URL or title."""


class AmbiguousFeedError(NotFoundError):
    """A FEED argument matches more than one feed."""


class InvalidURLError(StoryfeedError):
    """A URL that storyfeed cannot fetch."""


class DuplicateFeedError(StoryfeedError):
    """The feed is already subscribed."""


class UnsafeLinkError(StoryfeedError):
    """A story link that is not an absolute http(s) URL."""


class FetchError(StoryfeedError):
    """Fetching a feed failed: network, timeout, or an error status."""


class ParseError(StoryfeedError):
    """The document could not be read as a feed."""


class NotAFeedError(ParseError):
    """The document is HTML, empty, or some other kind of document."""


class StoreError(StoryfeedError):
    """The database cannot be opened, read or written."""


class DatabaseCorruptError(StoreError):
    """The database file is damaged or is not a storyfeed database."""


class DatabaseTooNewError(StoreError):
    """The database was written by a newer storyfeed and is left alone."""


class DatabaseBusyError(StoreError):
    """Another process held the database locked for too long."""


class InvalidOPMLError(StoryfeedError):
    """An OPML file that is malformed, hostile or too large to import."""


class FileAccessError(StoryfeedError):
    """A file the user named (an OPML file) cannot be read or written."""


class SearchQueryError(StoryfeedError):
    """A search query that cannot be searched for (no words, or only excluded ones)."""
