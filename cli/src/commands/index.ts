import type { CommandModule } from '../context.js';
import { daemonCommand } from './daemon.js';
import { buildCommand } from './build.js';
import { infoCommand } from './info.js';
import { historyCommand } from './history.js';
import { imageInspectCommand } from './image-inspect.js';
import { imagePruneCommand } from './image-prune.js';
import { imagesCommand } from './images.js';
import { importCommand } from './import.js';
import { loadCommand } from './load.js';
import { rmiCommand } from './rmi.js';
import { saveCommand } from './save.js';
import { systemDfCommand } from './system-df.js';
import { tagCommand } from './tag.js';
import { versionCommand } from './version.js';
import { containerCommands } from './containers.js';
import { volumeCommand } from './volume.js';
import { networkCommand } from './network.js';
import { loginCommand } from './login.js';
import { pullCommand } from './pull.js';
import { pushCommand } from './push.js';

/** Every `tsengine` command; add a file in this folder and one line here. */
export const commandModules: CommandModule[] = [daemonCommand, versionCommand, infoCommand,
  imagesCommand, imageInspectCommand, historyCommand, tagCommand, rmiCommand, importCommand, loadCommand, saveCommand, imagePruneCommand,
  systemDfCommand, volumeCommand, networkCommand, buildCommand, containerCommands, loginCommand, pullCommand, pushCommand];
