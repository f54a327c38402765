"""Getting the data: verified HTTP downloads (`http`), Kaggle's client (`kaggle`), guided manual sources
(`manual`), safe extraction (`extract`), `doctor` and checksums. Import the modules themselves: this package
imports nothing so that the CLI starts fast."""
