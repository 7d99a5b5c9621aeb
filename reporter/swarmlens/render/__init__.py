"""The rendering room: number and money formatting (`fmt`), chart geometry (`charts`) and PDF
documents (`pdf`). Pure presentation, shared by the web pages, the JSON/CSV exports and the mailed
reports; it imports neither Flask nor the mail code, and nothing of the store."""
