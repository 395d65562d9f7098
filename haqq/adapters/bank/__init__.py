"""The partner bank's own file formats (ISO 20022), kept apart from the rest of haqq.

Pure code: it turns payment runs into bank files and bank files into typed values, and never
talks to a bank itself.
"""
