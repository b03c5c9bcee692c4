// Lets cucumber-js load the TypeScript support code when it is started without `--import tsx`.
import { register } from 'tsx/esm/api';

register();
