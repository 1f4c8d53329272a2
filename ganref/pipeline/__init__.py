"""The pipeline: results records (report), batch runs of chapters (runner), the command line (cli), the site."""
