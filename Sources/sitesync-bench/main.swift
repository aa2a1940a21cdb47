import SiteSyncServer
import SiteSyncClient
print(1)
