import sys

from dicomweb_server.cli import main

sys.exit(main())
