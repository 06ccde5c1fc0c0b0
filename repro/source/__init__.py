"""Where the store under test comes from -- a directory as it ships, a git ref, its third-party requirements -- and the import check every foreign store passes before any trial."""
