"""Running a search of a config: the driver, drivers cooperating on one study, the re-test."""
